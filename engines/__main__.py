import sys

from .cpus import bind_threads, threads_from_argv

# Before numpy or any runtime loads: their thread pools read these variables once, at import.
_threads = threads_from_argv(sys.argv[1:])
if _threads:
    bind_threads(_threads)

if sys.argv[1:2] == ["serve"]:  # LoadGen serving (engines/serve/): one test of one engine layout
    from .serve.main import main as serve_main  # noqa: E402

    sys.exit(serve_main(sys.argv[2:]))

from .runner import main  # noqa: E402

sys.exit(main())
