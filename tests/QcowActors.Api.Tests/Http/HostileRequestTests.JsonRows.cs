using System.Text;

namespace QcowActors.Api.Tests.Http;

/// <summary>The table's JSON bodies and wrong methods.</summary>
public sealed partial class HostileRequestTests
{
    /// <summary>
    /// POST /images, PATCH /images/{name}/data and PATCH /images/{name} (resize, on scratch). JSON
    /// command bodies are read whatever their Content-Type (curl -d sends form-urlencoded; see
    /// ImageApiBehaviour), so a wrong type with valid JSON is a success and with anything else a 400.
    /// </summary>
    private static void AddJsonRows(
        Action<string, byte[], int, (string, string)[]> problem, Action<string, byte[], int, (string, string)[]> success)
    {
        void Problem(string name, byte[] request, int status) => problem(name, request, status, []);
        string deep = new string('[', 10_000) + new string(']', 10_000);
        string longName = new('a', 300);

        Problem("create duplicate size", Post("""{"name":"dup1","size":"1M","size":"2M"}"""), 400);
        Problem("create duplicate name in another case", Post("""{"name":"dup2","Name":"dup3","size":"1M"}"""), 400);
        Problem("create size 1e400", Post("""{"name":"big1","size":1e400}"""), 400);
        Problem("create size -1", Post("""{"name":"big2","size":-1}"""), 400);
        Problem("create size 2^64", Post("""{"name":"big3","size":18446744073709551616}"""), 400);
        Problem("create size 2^63", Post("""{"name":"big4","size":9223372036854775808}"""), 400);
        Problem("create size 2^63-1", Post("""{"name":"big5","size":9223372036854775807}"""), 400);
        Problem("create size 9999999999999999999999P", Post("""{"name":"big6","size":"9999999999999999999999P"}"""), 400);
        Problem("create size 8E", Post("""{"name":"big7","size":"8E"}"""), 400);
        Problem("create size 1.5", Post("""{"name":"big8","size":1.5}"""), 400);
        Problem("create size -1K", Post("""{"name":"big9","size":"-1K"}"""), 400);
        Problem("create size NaN", Post("""{"name":"big10","size":"NaN"}"""), 400);
        Problem("create size true", Post("""{"name":"big11","size":true}"""), 400);
        Problem("create size array", Post("""{"name":"big12","size":[1]}"""), 400);
        Problem("create clusterSize 2^64", Post("""{"name":"big13","size":"1M","clusterSize":18446744073709551616}"""), 400);
        Problem("create refcountBits 1e400", Post("""{"name":"big14","size":"1M","refcountBits":1e400}"""), 400);
        Problem("create 10000-deep array", Post(deep), 400);
        Problem("create 10000-deep member", Post($$"""{"name":"deep","size":{{deep}}}"""), 400);
        Problem("create body array", Post("[]"), 400);
        Problem("create body string", Post("\"vm\""), 400);
        Problem("create body number", Post("42"), 400);
        Problem("create body null", Post("null"), 400);
        Problem("create empty body", Post(""), 400);
        Problem("create whitespace body", Post("   "), 400);
        Problem("create two objects", Post("""{"name":"two1","size":"1M"}{}"""), 400);
        Problem("create trailing garbage", Post("""{"name":"two2","size":"1M"} x"""), 400);
        Problem("create comment", Post("""{/* c */"name":"two3","size":"1M"}"""), 400);
        Problem("create invalid UTF-8 in name", Request("POST", "/images",
            [.. "{\"name\":\""u8, 0xC3, 0x28, .. "\",\"size\":\"1M\"}"u8], "Content-Type: application/json"), 400);
        Problem("create invalid UTF-8 outside strings", Request("POST", "/images", [0xFF, .. "{}"u8], "Content-Type: application/json"), 400);
        Problem("create unknown member", Post("""{"name":"u1","size":"1M","cluster_size":4096}"""), 400);
        Problem("create name number", Post("""{"name":5,"size":"1M"}"""), 400);
        Problem("create name ..", Post("""{"name":"..","size":"1M"}"""), 400);
        Problem("create name ../x", Post("""{"name":"../x","size":"1M"}"""), 400);
        Problem("create name NUL", Post("""{"name":"vm\u0000","size":"1M"}"""), 400);
        Problem("create name newline", Post("""{"name":"vm\n","size":"1M"}"""), 400);
        Problem("create name of 300 characters", Post($$"""{"name":"{{longName}}","size":"1M"}"""), 400);
        Problem("create name é", Post("""{"name":"caf\u00e9","size":"1M"}"""), 400);
        Problem("create name emoji", Post("""{"name":"vm\ud83d\ude00","size":"1M"}"""), 400);
        Problem("create name lone surrogate", Post("""{"name":"vm\ud83d","size":"1M"}"""), 400);
        Problem("create name leading dot", Post("""{"name":".vm","size":"1M"}"""), 400);
        Problem("create existing name", Post("""{"name":"vm","size":"1M"}"""), 409);
        Problem("create backing ../vm", Post("""{"name":"ov1","backing":"../vm"}"""), 400);
        Problem("create backing absolute path", Post("""{"name":"ov2","backing":"/etc/passwd"}"""), 400);
        Problem("create body over 64 KiB", Post($$"""{"name":"pad","size":"1M","pad":"{{new string('x', 70_000)}}"}"""), 413);
        Problem("create Content-Length of a terabyte", Request("POST", "/images", null, "Content-Type: application/json", "Content-Length: 1099511627776"), 413);
        success("create text/plain with JSON", Post("""{"name":"plain1","size":"1M"}""", "text/plain"), 201, []);
        success("create without Content-Type", Post("""{"name":"plain2","size":"1M"}""", null), 201, []);
        Problem("create text/plain not JSON", Post("name=plain3&size=1M", "text/plain"), 400);
        Problem("create multipart", Post("--b\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nmp\r\n--b--\r\n", "multipart/form-data; boundary=b"), 400);

        Problem("zero op trim", Patch(Vm, """{"op":"trim"}"""), 400);
        Problem("zero empty object", Patch(Vm, "{}"), 400);
        Problem("zero op null", Patch(Vm, """{"op":null}"""), 400);
        Problem("zero op array", Patch(Vm, """{"op":["zero"]}"""), 400);
        Problem("zero offset 2^63-1", Patch(Vm, """{"op":"zero","offset":9223372036854775807,"size":1}"""), 416);
        Problem("zero size 2^63-1", Patch(Vm, """{"op":"zero","offset":0,"size":9223372036854775807}"""), 416);
        Problem("zero both near 2^63", Patch(Vm, """{"op":"zero","offset":9223372036854775806,"size":9223372036854775807}"""), 416);
        Problem("zero offset 2^63", Patch(Vm, """{"op":"zero","offset":9223372036854775808,"size":1}"""), 400);
        Problem("zero offset 2^64", Patch(Vm, """{"op":"zero","offset":18446744073709551616,"size":1}"""), 400);
        Problem("zero offset -1", Patch(Vm, """{"op":"zero","offset":-1,"size":1}"""), 400);
        Problem("zero size 1e400", Patch(Vm, """{"op":"zero","offset":0,"size":1e400}"""), 400);
        Problem("zero at the end", Patch(Vm, $$"""{"op":"zero","offset":{{DiskSize}},"size":1}"""), 416);
        Problem("zero offset string", Patch(Vm, """{"op":"zero","offset":"0","size":1}"""), 400);
        Problem("zero flush yes", Patch(Vm, """{"op":"zero","offset":0,"size":1,"flush":"yes"}"""), 400);
        Problem("zero without size", Patch(Vm, """{"op":"zero","offset":0}"""), 400);
        Problem("zero duplicate op", Patch(Vm, """{"op":"flush","op":"zero","offset":0,"size":1048576}"""), 400);
        Problem("zero 10000-deep", Patch(Vm, deep), 400);
        Problem("zero not JSON", Patch(Vm, "op=zero"), 400);
        Problem("zero absent image", Patch("/images/nothere/data", """{"op":"flush"}"""), 404);

        Problem("resize size -1", Patch("/images/scratch", """{"size":-1}"""), 400);
        Problem("resize size 16E", Patch("/images/scratch", """{"size":"16E"}"""), 400);
        Problem("resize size 2^63-1", Patch("/images/scratch", """{"size":9223372036854775807}"""), 400);
        Problem("resize size 1e400 string", Patch("/images/scratch", """{"size":"1e400"}"""), 400);
        Problem("resize duplicate size", Patch("/images/scratch", """{"size":"128M","size":"1M"}"""), 400);
    }

    /// <summary>Wrong methods: 405 with Allow (RFC 9110 §15.5.6), made a problem by status code pages; OPTIONS and extents.</summary>
    private static void AddMethodRows(
        Action<string, byte[], int, (string, string)[]> problem, Action<string, byte[], int> kestrel, Action<string, byte[], int, (string, string)[]> success)
    {
        void Problem(string name, byte[] request, int status) => problem(name, request, status, []);
        // Kestrel reads header values as Latin-1 here; "٠-٥" are not ASCII digits, so the Range is ignored.
        success("header value in UTF-8", Head(Vm, "Range: bytes=٠-٥"), 200, [WholeDiskLength]);
        success("HEAD /healthz/ready", Head("/healthz/ready"), 200, []);
        Problem("DELETE /images/vm/data", Request("DELETE", Vm), 405);
        Problem("POST /images/vm/data", Request("POST", Vm, "{}"u8.ToArray()), 405);
        Problem("TRACE /images/vm/data", Request("TRACE", Vm), 405);
        Problem("FOO /images/vm/data", Request("FOO", Vm), 405);
        Problem("PUT /images", Request("PUT", "/images", "{}"u8.ToArray()), 405);
        Problem("PATCH /images", Request("PATCH", "/images", "{}"u8.ToArray()), 405);
        Problem("DELETE /images", Request("DELETE", "/images"), 405);
        Problem("PUT /images/vm/data/extents", Request("PUT", Vm + "/extents", "[]"u8.ToArray()), 405);
        Problem("POST /healthz/ready", Request("POST", "/healthz/ready", "{}"u8.ToArray()), 405);
        Problem("DELETE /healthz/live", Request("DELETE", "/healthz/live"), 405);
        Problem("CONNECT /images/vm/data", Request("CONNECT", Vm), 405);
        Problem("OPTIONS /images", Request("OPTIONS", "/images"), 405);
        Problem("OPTIONS an absent image", Request("OPTIONS", "/images/nothere/data"), 404);
        Problem("OPTIONS name leading dot", Request("OPTIONS", "/images/.vm/data"), 400);
        Problem("OPTIONS name %2f", Request("OPTIONS", "/images/vm%2f..%2fnothere/data"), 400);
        Problem("snapshot name of 60000 characters", Request("POST", "/images/scratch/snapshots",
            Encoding.UTF8.GetBytes($$"""{"name":"{{new string('s', 60_000)}}"}"""), "Content-Type: application/json"), 400);
        Problem("snapshot name NUL", Request("POST", "/images/scratch/snapshots", """{"name":"a\u0000b"}"""u8.ToArray(), "Content-Type: application/json"), 400);
        Problem("snapshot name all digits", Request("POST", "/images/scratch/snapshots", """{"name":"18446744073709551616"}"""u8.ToArray(), "Content-Type: application/json"), 400);
        Problem("snapshot name lone surrogate", Request("POST", "/images/scratch/snapshots", """{"name":"s\udc00"}"""u8.ToArray(), "Content-Type: application/json"), 400);
        Problem("snapshot duplicate name member", Request("POST", "/images/scratch/snapshots", """{"name":"s1","NAME":"s2"}"""u8.ToArray(), "Content-Type: application/json"), 400);
        Problem("snapshot read id 2^64", Get("/images/vm/snapshots/18446744073709551616/data", "Range: bytes=0-0"), 404);
        Problem("snapshot read name %2f", Get("/images/vm/snapshots/a%2fb/data"), 404);
        Problem("snapshot extents absent", Get("/images/vm/snapshots/nosuch/data/extents"), 404);
        Problem("snapshot revert absent", Request("POST", "/images/vm/snapshots/nosuch/revert", null, "Content-Length: 0"), 404);
        Problem("snapshot delete absent", Request("DELETE", "/images/vm/snapshots/nosuch"), 404);
        Problem("snapshot list name leading dot", Get("/images/.vm/snapshots"), 400);
        Problem("extents context dirty", Get(Vm + "/extents?context=dirty"), 404);
        Problem("extents context bogus", Get(Vm + "/extents?context=bogus"), 400);
        Problem("extents context %00", Get(Vm + "/extents?context=%00"), 400);
        Problem("extents context twice", Get(Vm + "/extents?context=zero&context=dirty"), 400);
        Problem("extents absent image", Get("/images/nothere/data/extents"), 404);
        // The request line or head itself is broken: Kestrel answers 400 before any routing.
        kestrel("garbage request line", Bytes("GARBAGE\r\n\r\n"), 400);
        kestrel("HTTP/1.1 without Host", Bytes($"GET {Vm} HTTP/1.1\r\nConnection: close\r\n\r\n"), 400);
        kestrel("header value with NUL", Get(Vm, "Range: bytes=0-1\0"), 400);
        kestrel("header name with a space", Get(Vm, "Bad Header: 1"), 400);
        kestrel("header folded over two lines", Get(Vm, "Range: bytes=0-1", " 2-3"), 400);
        kestrel("request line without a version", Bytes($"GET {Vm}\r\n\r\n"), 400);
        kestrel("request line HTTP/9.9", Bytes($"GET {Vm} HTTP/9.9\r\nHost: test\r\nConnection: close\r\n\r\n"), 505);
    }

    private static byte[] Post(string json, string? contentType = "application/json")
        => Request("POST", "/images", Encoding.UTF8.GetBytes(json), contentType is null ? [] : [$"Content-Type: {contentType}"]);

    private static byte[] Patch(string target, string json)
        => Request("PATCH", target, Encoding.UTF8.GetBytes(json), "Content-Type: application/json");
}
