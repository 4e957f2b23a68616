# The image the k8s/ manifests run (qcowactors:latest): docker build -t qcowactors:latest .
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY . .
RUN dotnet publish src/Api -c Release -o /app --nologo

FROM mcr.microsoft.com/dotnet/aspnet:10.0
WORKDIR /app
COPY --from=build /app .
# Matches the pod's securityContext (runAsUser 1654 = the image's "app" user).
USER 1654
EXPOSE 8080 8558 4053
ENTRYPOINT ["dotnet", "QcowActors.Api.dll"]
