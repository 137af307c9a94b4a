namespace Hil.Boards.Shell;

/// <summary>
/// The CRC of POSIX <c>cksum</c> (CRC-32/CKSUM: poly 0x04C11DB7, MSB first, length appended,
/// inverted), so the harness can check what the board's own <c>cksum</c> says about a large output.
/// </summary>
public static class PosixCksum
{
    private static readonly uint[] Table = BuildTable();

    private static uint[] BuildTable()
    {
        var t = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            var c = i << 24;
            for (var k = 0; k < 8; k++) c = (c & 0x80000000) != 0 ? (c << 1) ^ 0x04C11DB7 : c << 1;
            t[i] = c;
        }
        return t;
    }

    public static uint Compute(ReadOnlySpan<byte> data)
    {
        uint crc = 0;
        foreach (var b in data) crc = (crc << 8) ^ Table[(crc >> 24) ^ b];
        for (var len = (ulong)data.Length; len != 0; len >>= 8) crc = (crc << 8) ^ Table[(crc >> 24) ^ (byte)len];
        return ~crc;
    }
}
