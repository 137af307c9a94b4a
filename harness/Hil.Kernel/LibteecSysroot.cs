namespace Hil.Kernel;

/// <summary>Where the libteec headers and library for arm64 clients are.</summary>
public sealed record LibteecSysroot(string Directory, string IncludeDirectory, string LibraryDirectory, string Version);
