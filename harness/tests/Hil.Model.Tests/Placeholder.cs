namespace Hil.Model.Tests; public class PlaceholderTests { [Test] public void Builds() => Assert.That(typeof(Hil.Model.Placeholder), Is.Not.Null); }
