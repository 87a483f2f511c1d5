"""Build the compiled row kernel (``scan.c`` → ``_scan.so``): ``python -m upflow.core.kernel_build [DEST]``.

One place for the compiler command: ``make`` builds it next to the sources, ``make package``
into the Lambda zip. ``-nostdlib``: the library needs no libc symbol at all, so a build on
any x86_64 Linux loads on Lambda's Amazon Linux (a test checks there is no undefined
dynamic symbol). No ``-march=native``: the Lambda CPU is not this machine's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("scan.c")
LIBRARY_NAME = "_scan.so"
DEFAULT_DEST = Path(__file__).with_name(LIBRARY_NAME)
CFLAGS = (
    "-O3",
    "-std=c11",
    "-fPIC",
    "-shared",
    "-nostdlib",
    "-fvisibility=hidden",
    # Keeps gcc from turning loops into memset/memcpy calls (there is no libc to call).
    "-fno-tree-loop-distribute-patterns",
    "-Wall",
    "-Wextra",
    "-Werror",
)


class KernelBuildError(RuntimeError):
    """The compiler is missing or failed (the message says which)."""


def compiler() -> str:
    found = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
    if found is None:
        raise KernelBuildError("no C compiler found (install gcc, or set CC)")
    return found


def build(dest: Path = DEFAULT_DEST) -> Path:
    """Compile ``scan.c`` into ``dest`` (atomically: a reader never sees half a library)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".scan-", suffix=".so", dir=dest.parent)
    os.close(fd)
    try:
        done = subprocess.run(
            [compiler(), *CFLAGS, "-o", tmp, str(SOURCE)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise KernelBuildError(f"compiling {SOURCE.name} failed:\n{done.stderr}")
        os.chmod(tmp, 0o755)  # mkstemp's 0600 would keep Lambda's runtime user from loading it
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    dest = Path(args[0]) if args else DEFAULT_DEST
    try:
        print(f"upflow.core.kernel_build: wrote {build(dest)}")
    except KernelBuildError as error:
        print(f"upflow.core.kernel_build: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
