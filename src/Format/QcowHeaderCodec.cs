using System.Buffers.Binary;
using System.Text;
using static QcowActors.Format.HeaderValidation;

namespace QcowActors.Format;

/// <summary>Table-driven parse/write of the header; field offsets named as in qcow2.txt.</summary>
internal static class QcowHeaderCodec
{
    /// <summary>Each header extension starts with u32 type and u32 length.</summary>
    private const int ExtensionPrefixBytes = 8;
    private const int ExtensionTypeOffset = 0;
    private const int ExtensionLengthOffset = 4;
    private const string ExtensionField = "header_extension";

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static QcowHeader Parse(ReadOnlySpan<byte> firstCluster, long fileLength)
    {
        if (firstCluster.Length < QcowHeader.V2Length)
            throw Invalid(HeaderField.HeaderLength,
                $"the image holds {firstCluster.Length} bytes, fewer than the {QcowHeader.V2Length}-byte header");

        var raw = new RawHeader(stackalloc ulong[HeaderFields.All.Count]);
        raw.ReadFrom(firstCluster, QcowHeader.V2Length);
        CheckMagic(raw);
        uint version = CheckVersion(raw);
        int clusterBits = CheckClusterBits(raw);
        uint headerLength = QcowHeader.V2Length;
        if (version == 2)
        {
            // v2 has no refcount_order or header_length on disk: both are implied.
            raw[HeaderField.RefcountOrder] = V2RefcountOrder;
        }
        else
        {
            headerLength = CheckHeaderLength(firstCluster, 1 << clusterBits);
            raw.ReadFrom(firstCluster, headerLength);
        }
        raw[HeaderField.HeaderLength] = headerLength;

        CheckFeatures(raw, clusterBits);
        CheckRefcountOrder(raw);
        CheckCryptMethod(raw);
        CheckSizeAndL1Size(raw, clusterBits);
        CheckRefcountTable(raw, clusterBits, fileLength);
        CheckL1Table(raw, clusterBits, fileLength);
        CheckSnapshotTable(raw, clusterBits, fileLength);

        var header = new QcowHeader();
        foreach (var field in HeaderFields.All)
            field.Set(header, raw[field.Id]);
        if (version != 2)
            header.AdditionalFields = firstCluster[QcowHeader.V3MinLength..(int)headerLength].ToArray();

        int clusterEnd = Math.Min(1 << clusterBits, firstCluster.Length);
        int extensionsEnd = ReadBackingFile(firstCluster[..clusterEnd], header);
        ReadExtensions(firstCluster[..extensionsEnd], (int)headerLength, header.Extensions);
        // Encrypted images were refused above, so here crypt_method is 0: an encryption extension contradicts it (QEMU refuses the image too).
        if (header.FindExtension(HeaderExtensionType.FullDiskEncryption) is not null)
            throw Invalid(HeaderField.CryptMethod, "the image has a full disk encryption header extension but crypt_method 0 (not encrypted): the header contradicts itself");
        return header;
    }

    public static int Write(QcowHeader header, Span<byte> cluster)
    {
        uint headerLength = WrittenHeaderLength(header, cluster.Length);
        byte[]? backingName = EncodeBackingFile(header.BackingFile);

        // The rest of the first cluster may only hold the backing file name (qcow2.txt), so start clean.
        cluster.Clear();
        if (headerLength > QcowHeader.V3MinLength)
            header.AdditionalFields.CopyTo(cluster[QcowHeader.V3MinLength..]);
        int offset = (int)headerLength;
        foreach (var extension in header.Extensions)
        {
            if (extension.Type == HeaderExtensionType.End)
                throw new QcowFormatException(QcowProblem.Invalid, ExtensionField,
                    "a header extension of type 0 would end the extension list early");
            offset = WriteExtension(cluster, offset, extension.Type, extension.Data);
        }
        offset = WriteExtension(cluster, offset, HeaderExtensionType.End, []);

        int backingLength = backingName?.Length ?? 0;
        if (backingLength > cluster.Length - offset)
            throw Invalid(HeaderField.BackingFileOffset,
                $"the backing file name ({backingLength} bytes) does not fit after the header extensions in the {cluster.Length}-byte cluster");
        backingName?.CopyTo(cluster[offset..]);
        header.BackingFileOffset = backingName is null ? 0 : offset;
        header.BackingFileSize = (uint)backingLength;
        header.HeaderLength = headerLength;

        foreach (var field in HeaderFields.All)
        {
            if (field.IsPresent(headerLength))
                field.Write(cluster, field.Get(header));
        }
        return offset + backingLength;
    }

    /// <summary>
    /// v2 is always 72 bytes and can express none of the v3 fields. v3 keeps HeaderLength when set
    /// (0 means "as short as the additional fields allow"); it must hold AdditionalFields and, when
    /// non-zero, compression_type.
    /// </summary>
    /// <summary>
    /// The header's fixed fields alone (its first header_length bytes), for updating a header in
    /// place: the extensions and backing name after them stay as the file has them, and a write of
    /// these few bytes lies within one sector. Returns the number of bytes to write.
    /// </summary>
    public static int WriteFixedFields(QcowHeader header, Span<byte> fields)
    {
        uint headerLength = header.Version == 2 ? QcowHeader.V2Length : header.HeaderLength;
        if (fields.Length < headerLength)
            throw new ArgumentException($"{headerLength} bytes are needed for the header's fields", nameof(fields));
        fields[..(int)headerLength].Clear();
        if (headerLength > QcowHeader.V3MinLength)
            header.AdditionalFields.AsSpan(0, Math.Min(header.AdditionalFields.Length, (int)headerLength - QcowHeader.V3MinLength))
                .CopyTo(fields[QcowHeader.V3MinLength..]);
        foreach (var field in HeaderFields.All)
        {
            if (field.IsPresent(headerLength))
                field.Write(fields, field.Get(header));
        }
        return (int)headerLength;
    }

    private static uint WrittenHeaderLength(QcowHeader header, int clusterLength)
    {
        uint length = header.Version switch
        {
            2 => CheckWritableV2(header),
            3 => CheckWritableV3(header),
            _ => throw Invalid(HeaderField.Version, $"version {header.Version} cannot be written: only 2 and 3 exist"),
        };
        if (length + ExtensionPrefixBytes > clusterLength)
            throw Invalid(HeaderField.HeaderLength,
                $"header_length {length} and the extension end marker do not fit in the {clusterLength}-byte cluster");
        return length;
    }

    private static uint CheckWritableV2(QcowHeader header)
    {
        if (header.RefcountOrder != V2RefcountOrder)
            throw Invalid(HeaderField.RefcountOrder, $"refcount_order {header.RefcountOrder} needs version 3 (version 2 implies 4)");
        if (header.IncompatibleFeatures != 0 || header.CompatibleFeatures != 0 || header.AutoclearFeatures != 0)
            throw Invalid(HeaderField.IncompatibleFeatures, "version 2 headers have no feature bits");
        if (header.AdditionalFields.Length != 0 || header.CompressionType != QcowCompression.Zlib)
            throw Invalid(HeaderField.CompressionType, "version 2 headers have no additional fields");
        return QcowHeader.V2Length;
    }

    private static uint CheckWritableV3(QcowHeader header)
    {
        uint length = header.HeaderLength;
        if (length == 0)
        {
            int needed = QcowHeader.V3MinLength + Math.Max(header.AdditionalFields.Length,
                header.CompressionType != QcowCompression.Zlib ? 1 : 0);
            length = (uint)HeaderFields.AlignUp(needed);
        }
        if (length < QcowHeader.V3MinLength || length % HeaderFields.Alignment != 0)
            throw Invalid(HeaderField.HeaderLength,
                $"header_length {length} is not a multiple of {HeaderFields.Alignment} of at least {QcowHeader.V3MinLength}");
        if ((ulong)header.AdditionalFields.Length > length - QcowHeader.V3MinLength)
            throw Invalid(HeaderField.HeaderLength,
                $"header_length {length} cannot hold {header.AdditionalFields.Length} bytes of additional fields");
        if (header.CompressionType != QcowCompression.Zlib && length <= HeaderFields.CompressionTypeOffset)
            throw Invalid(HeaderField.CompressionType,
                $"compression_type {header.CompressionType} needs header_length above {HeaderFields.CompressionTypeOffset}");
        return length;
    }

    private static int WriteExtension(Span<byte> cluster, int offset, uint type, ReadOnlySpan<byte> data)
    {
        int padded = HeaderFields.AlignUp(data.Length);
        // Room for this extension and for the end marker that must follow it.
        int needed = ExtensionPrefixBytes + padded + (type == HeaderExtensionType.End ? 0 : ExtensionPrefixBytes);
        if (needed > cluster.Length - offset)
            throw new QcowFormatException(QcowProblem.Invalid, ExtensionField,
                $"header extension 0x{type:x8} ({data.Length} bytes) does not fit in the {cluster.Length}-byte first cluster");
        BinaryPrimitives.WriteUInt32BigEndian(cluster[(offset + ExtensionTypeOffset)..], type);
        BinaryPrimitives.WriteUInt32BigEndian(cluster[(offset + ExtensionLengthOffset)..], (uint)data.Length);
        data.CopyTo(cluster[(offset + ExtensionPrefixBytes)..]);
        return offset + ExtensionPrefixBytes + padded;
    }

    private static byte[]? EncodeBackingFile(string? name)
    {
        if (name is null)
            return null;
        byte[] bytes;
        try
        {
            bytes = StrictUtf8.GetBytes(name);
        }
        catch (EncoderFallbackException)
        {
            throw Invalid(HeaderField.BackingFileOffset, "the backing file name is not valid Unicode");
        }
        if (bytes.Length > QcowLimits.MaxBackingFileNameBytes)
            throw Invalid(HeaderField.BackingFileSize,
                $"backing_file_size {bytes.Length} exceeds {QcowLimits.MaxBackingFileNameBytes} bytes");
        return bytes;
    }

    /// <summary>Reads the backing file name; returns where the extension area ends (the name follows it).</summary>
    private static int ReadBackingFile(ReadOnlySpan<byte> cluster, QcowHeader header)
    {
        ulong offset = (ulong)header.BackingFileOffset;
        uint size = header.BackingFileSize;
        if (offset == 0)
        {
            // backing_file_size is undefined without a backing file: do not carry garbage around.
            header.BackingFileSize = 0;
            return cluster.Length;
        }
        if (size > QcowLimits.MaxBackingFileNameBytes)
            throw Invalid(HeaderField.BackingFileSize,
                $"backing_file_size {size} exceeds {QcowLimits.MaxBackingFileNameBytes} bytes");
        if (offset < header.HeaderLength)
            throw Invalid(HeaderField.BackingFileOffset,
                $"backing_file_offset {offset} lies inside the {header.HeaderLength}-byte header");
        if (offset > (ulong)cluster.Length || size > (ulong)cluster.Length - offset)
            throw Invalid(HeaderField.BackingFileOffset,
                $"backing_file_offset {offset} with backing_file_size {size} runs past the {cluster.Length}-byte first cluster");
        try
        {
            header.BackingFile = StrictUtf8.GetString(cluster.Slice((int)offset, (int)size));
        }
        catch (DecoderFallbackException)
        {
            throw Invalid(HeaderField.BackingFileOffset, $"the backing file name at backing_file_offset {offset} is not UTF-8");
        }
        return (int)offset;
    }

    /// <summary>Keeps every extension, known or not, byte for byte and in order, up to the end marker.</summary>
    private static void ReadExtensions(ReadOnlySpan<byte> area, int offset, List<HeaderExtension> extensions)
    {
        while (offset < area.Length)
        {
            if (area.Length - offset < ExtensionPrefixBytes)
                throw new QcowFormatException(QcowProblem.Invalid, ExtensionField,
                    $"the header extension at offset {offset} is cut off at byte {area.Length} of the first cluster");
            uint type = BinaryPrimitives.ReadUInt32BigEndian(area[(offset + ExtensionTypeOffset)..]);
            uint length = BinaryPrimitives.ReadUInt32BigEndian(area[(offset + ExtensionLengthOffset)..]);
            int dataStart = offset + ExtensionPrefixBytes;
            if (type == HeaderExtensionType.End)
                return;
            if (length > (uint)(area.Length - dataStart))
                throw new QcowFormatException(QcowProblem.Invalid, ExtensionField,
                    $"header extension 0x{type:x8} at offset {offset} has length {length}, running past byte {area.Length} of the first cluster");
            extensions.Add(new HeaderExtension(type, area.Slice(dataStart, (int)length).ToArray()));
            offset = dataStart + HeaderFields.AlignUp((int)length);
        }
    }
}
