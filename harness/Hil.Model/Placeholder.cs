namespace Hil.Model; public static class Placeholder { }
