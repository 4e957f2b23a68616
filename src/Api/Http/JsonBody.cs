using System.Text.Json;

namespace QcowActors.Api.Http;

/// <summary>
/// Reads small JSON command bodies by hand instead of model binding, so every malformed body gets a
/// 400 problem naming the member at fault (model binding answers a bare 400, and cannot take a size
/// that is either a number or "10G").
/// </summary>
internal static class JsonBody
{
    /// <summary>The parsed object, or null with a detail for a 400 problem.</summary>
    public static async Task<(JsonDocument? Document, string Error)> ReadObjectAsync(HttpRequest request, CancellationToken ct)
    {
        JsonDocument document;
        try
        {
            document = await JsonDocument.ParseAsync(request.Body, default, ct);
        }
        catch (JsonException e)
        {
            string reason = request.ContentLength == 0 ? "the request body is empty" : e.Message;
            return (null, $"malformed JSON: {reason}");
        }
        catch (IOException e) when (e is not BadHttpRequestException && !ct.IsCancellationRequested)
        {
            return (null, MalformedBody.Detail(e));
        }
        string? refusal = document.RootElement.ValueKind != JsonValueKind.Object
            ? $"expected a JSON object, got {document.RootElement.ValueKind.ToString().ToLowerInvariant()}"
            : Ambiguity(document.RootElement);
        if (refusal is not null)
        {
            document.Dispose();
            return (null, refusal);
        }
        return (document, "");
    }

    /// <summary>
    /// What the parser accepts but a command must not carry: a member given twice (RFC 8259 leaves
    /// the meaning to the reader, and members are looked up ASCII case-insensitively, so "size" and
    /// "Size" are the same member), and text that is not Unicode (invalid UTF-8, an unpaired
    /// surrogate escape), which System.Text.Json only refuses when the string is read.
    /// </summary>
    private static string? Ambiguity(JsonElement root)
    {
        try
        {
            return FirstDuplicate(root);
        }
        catch (InvalidOperationException)
        {
            return "malformed JSON: a string is not valid Unicode (invalid UTF-8, or a \\u escape of an unpaired surrogate)";
        }
    }

    /// <summary>Reads every name and string once; the parser's depth limit (64) bounds the recursion.</summary>
    private static string? FirstDuplicate(JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.String:
                _ = element.GetString();
                return null;
            case JsonValueKind.Array:
                foreach (JsonElement item in element.EnumerateArray())
                    if (FirstDuplicate(item) is { } inner)
                        return inner;
                return null;
            case JsonValueKind.Object:
                var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
                foreach (JsonProperty p in element.EnumerateObject())
                {
                    if (!seen.Add(p.Name))
                        return $"member '{p.Name}' appears more than once";
                    if (FirstDuplicate(p.Value) is { } inner)
                        return inner;
                }
                return null;
            default:
                return null;
        }
    }

    /// <summary>
    /// The refusal of the first member not in <paramref name="allowed"/> (ASCII case-insensitive), or
    /// null. Unknown members are refused rather than ignored: "cluster_size" silently dropped would
    /// create an image with the wrong layout.
    /// </summary>
    public static string? UnknownMember(JsonElement obj, params string[] allowed)
    {
        foreach (JsonProperty p in obj.EnumerateObject())
            if (!allowed.Contains(p.Name, StringComparer.OrdinalIgnoreCase))
                return $"unknown member '{p.Name}'; expected {string.Join(", ", allowed)}";
        return null;
    }

    /// <summary>The member named <paramref name="name"/> (ASCII case-insensitive), if present and not null.</summary>
    public static bool TryGet(JsonElement obj, string name, out JsonElement value)
    {
        foreach (JsonProperty p in obj.EnumerateObject())
        {
            if (string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase) && p.Value.ValueKind != JsonValueKind.Null)
            {
                value = p.Value;
                return true;
            }
        }
        value = default;
        return false;
    }

    /// <summary>A non-negative whole number given as a JSON number (1e9 included).</summary>
    public static bool TryGetWholeNumber(JsonElement value, out long number)
    {
        number = 0;
        if (value.ValueKind != JsonValueKind.Number)
            return false;
        if (value.TryGetInt64(out number))
            return number >= 0;
        if (value.TryGetDecimal(out decimal d) && d >= 0 && d <= long.MaxValue && d == decimal.Truncate(d))
        {
            number = (long)d;
            return true;
        }
        return false;
    }

    /// <summary>A byte count given as a JSON number or as a qemu-img style string ("64K", "10G").</summary>
    public static bool TryGetByteSize(JsonElement value, string member, out long bytes, out string error)
    {
        error = "";
        if (value.ValueKind == JsonValueKind.String)
        {
            if (ByteSize.TryParse(value.GetString(), out bytes, out string sizeError))
                return true;
            error = $"{member}: {sizeError}";
            return false;
        }
        if (TryGetWholeNumber(value, out bytes))
            return true;
        error = $"{member} must be a non-negative whole number of bytes or a string such as \"10G\", not {Describe(value)}";
        return false;
    }

    public static string Describe(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => $"\"{value.GetString()}\"",
        JsonValueKind.Number => value.GetRawText(),
        JsonValueKind.True or JsonValueKind.False => value.GetRawText(),
        var kind => kind.ToString().ToLowerInvariant(),
    };
}
