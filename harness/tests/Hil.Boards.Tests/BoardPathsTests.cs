using Hil.Boards.BoardFiles;

namespace Hil.Boards.Tests;

/// <summary>Paths in board files: relative to the file, "~/" the home, ${NAME} and ${NAME:-default} from the environment.</summary>
[TestFixture]
public class BoardPathsTests
{
    [Test]
    public void EnvironmentVariablesAndDefaultsAreExpanded()
    {
        Environment.SetEnvironmentVariable("HIL_TEST_LAB_DIR", "/srv/lab");
        Environment.SetEnvironmentVariable("HIL_TEST_UNSET_DIR", null);
        try
        {
            var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
            using (Assert.EnterMultipleScope())
            {
                Assert.That(BoardPaths.Resolve("${HIL_TEST_LAB_DIR}/boards/kh", "/etc/hil"), Is.EqualTo("/srv/lab/boards/kh"));
                Assert.That(BoardPaths.Resolve("${HIL_TEST_UNSET_DIR:-~/.cache/hil}/kh", "/etc/hil"), Is.EqualTo(Path.Combine(home, ".cache/hil/kh")));
                Assert.That(BoardPaths.Resolve("${HIL_TEST_LAB_DIR:-/nope}/kh", "/etc/hil"), Is.EqualTo("/srv/lab/kh"));
                // Unset with no default: left as written, so the missing file's error shows it.
                Assert.That(BoardPaths.Resolve("${HIL_TEST_UNSET_DIR}/kh", "/etc/hil"), Is.EqualTo("/etc/hil/${HIL_TEST_UNSET_DIR}/kh"));
                Assert.That(BoardPaths.Resolve("keys/id", "/etc/hil"), Is.EqualTo("/etc/hil/keys/id"));
            }
        }
        finally
        {
            Environment.SetEnvironmentVariable("HIL_TEST_LAB_DIR", null);
        }
    }
}
