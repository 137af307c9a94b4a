namespace Hil.Model.Core;

/// <summary>Builds a canonical byte key for a state (the explorer deduplicates on it).</summary>
public ref struct KeyWriter(Span<byte> buffer)
{
    private readonly Span<byte> _buffer = buffer;
    public int Length { get; private set; }

    public void Byte(byte b)
    {
        if (Length >= _buffer.Length) throw new InvalidOperationException("state key buffer too small");
        _buffer[Length++] = b;
    }

    public readonly ReadOnlySpan<byte> Written => _buffer[..Length];
}

/// <summary>Compares byte-array keys by content.</summary>
public sealed class ByteKeyComparer : IEqualityComparer<byte[]>, IAlternateEqualityComparer<ReadOnlySpan<byte>, byte[]>
{
    public static readonly ByteKeyComparer Instance = new();
    public bool Equals(byte[]? x, byte[]? y) => x.AsSpan().SequenceEqual(y);
    public int GetHashCode(byte[] obj) => GetHashCode((ReadOnlySpan<byte>)obj);

    // Lets the explorer look a key up from a stack buffer and allocate only for new states.
    public bool Equals(ReadOnlySpan<byte> alternate, byte[] other) => alternate.SequenceEqual(other);
    public int GetHashCode(ReadOnlySpan<byte> alternate)
    {
        var h = new HashCode();
        h.AddBytes(alternate);
        return h.ToHashCode();
    }
    public byte[] Create(ReadOnlySpan<byte> alternate) => alternate.ToArray();
}
