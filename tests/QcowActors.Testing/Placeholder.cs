namespace QcowActors.Testing; public static class Placeholder { }
