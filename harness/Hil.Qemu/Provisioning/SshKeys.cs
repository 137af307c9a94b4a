using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Hil.Kernel;

namespace Hil.Qemu.Provisioning;

/// <summary>An ed25519 key pair made by ssh-keygen, readable as OpenSSH and dropbear key files.</summary>
public sealed class Ed25519KeyPair
{
    /// <summary>Public key line as in authorized_keys / known_hosts: "ssh-ed25519 AAAA… comment".</summary>
    public required string PublicLine { get; init; }
    /// <summary>The SSH wire blob of the public key (what fingerprints are computed over).</summary>
    public required byte[] PublicBlob { get; init; }
    /// <summary>"SHA256:…" exactly as ssh-keygen -l prints it.</summary>
    public string Fingerprint => "SHA256:" + Convert.ToBase64String(SHA256.HashData(PublicBlob)).TrimEnd('=');

    /// <summary>Generates a fresh pair at <paramref name="privatePath"/> (mode 0600) and <c>.pub</c> beside it.</summary>
    public static async Task<Ed25519KeyPair> GenerateAsync(string privatePath, string comment, CancellationToken ct)
    {
        if (File.Exists(privatePath)) File.Delete(privatePath);
        if (File.Exists(privatePath + ".pub")) File.Delete(privatePath + ".pub");
        await ExternalTool.RunAsync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", privatePath], ct: ct);
        File.SetUnixFileMode(privatePath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return Load(privatePath);
    }

    public static Ed25519KeyPair Load(string privatePath)
    {
        var line = File.ReadAllText(privatePath + ".pub").Trim();
        var parts = line.Split(' ');
        if (parts.Length < 2 || parts[0] != "ssh-ed25519")
            throw new ProvisioningException($"{privatePath}.pub: not an ed25519 public key");
        return new Ed25519KeyPair { PublicLine = line, PublicBlob = Convert.FromBase64String(parts[1]) };
    }

    /// <summary>
    /// Converts an unencrypted OpenSSH ed25519 private key to dropbear's own key file format:
    /// string "ssh-ed25519" then one string of 64 bytes (the 32-byte seed followed by the public key),
    /// which is the same 64-byte value OpenSSH stores.
    /// </summary>
    public static byte[] ToDropbear(string openSshPrivatePath)
    {
        var pem = File.ReadAllLines(openSshPrivatePath).Where(l => !l.StartsWith("-----", StringComparison.Ordinal));
        var blob = Convert.FromBase64String(string.Concat(pem));
        var r = new SshReader(blob);
        var magic = Encoding.ASCII.GetBytes("openssh-key-v1\0");
        if (!blob.AsSpan(0, magic.Length).SequenceEqual(magic)) throw new ProvisioningException($"{openSshPrivatePath}: not an OpenSSH private key");
        r.Skip(magic.Length);
        if (r.String() != "none") throw new ProvisioningException($"{openSshPrivatePath}: encrypted keys cannot be converted");
        r.Bytes(); r.Bytes(); // kdf name and options
        if (r.UInt32() != 1) throw new ProvisioningException($"{openSshPrivatePath}: expected exactly one key");
        r.Bytes(); // public key blob
        var priv = new SshReader(r.Bytes());
        if (priv.UInt32() != priv.UInt32()) throw new ProvisioningException($"{openSshPrivatePath}: corrupt private section");
        if (priv.String() != "ssh-ed25519") throw new ProvisioningException($"{openSshPrivatePath}: not an ed25519 key");
        priv.Bytes(); // public key (32)
        var secret = priv.Bytes();
        if (secret.Length != 64) throw new ProvisioningException($"{openSshPrivatePath}: unexpected ed25519 secret length {secret.Length}");
        using var ms = new MemoryStream();
        WriteString(ms, Encoding.ASCII.GetBytes("ssh-ed25519"));
        WriteString(ms, secret);
        CryptographicOperations.ZeroMemory(secret);
        return ms.ToArray();
    }

    private static void WriteString(Stream s, byte[] data)
    {
        Span<byte> len = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(len, (uint)data.Length);
        s.Write(len);
        s.Write(data);
    }

    private sealed class SshReader(byte[] data)
    {
        private int _pos;
        public void Skip(int n) => _pos += n;
        public uint UInt32() { var v = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(_pos)); _pos += 4; return v; }
        public byte[] Bytes() { var n = (int)UInt32(); var b = data.AsSpan(_pos, n).ToArray(); _pos += n; return b; }
        public string String() => Encoding.ASCII.GetString(Bytes());
    }
}
