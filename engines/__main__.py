import sys

from .cpus import bind_threads, threads_from_argv

# Before numpy or any runtime loads: their thread pools read these variables once, at import.
_threads = threads_from_argv(sys.argv[1:])
if _threads:
    bind_threads(_threads)

from .runner import main  # noqa: E402

sys.exit(main())
