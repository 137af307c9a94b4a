namespace Hil.Kernel;

/// <summary>A provisioning failure that a person can act on (no stack trace needed).</summary>
public sealed class ProvisioningException(string message, Exception? inner = null) : Exception(message, inner);
