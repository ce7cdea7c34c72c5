"""``python -m agentpty``: the command line.

Claude Code runs ``python -m agentpty hook`` for the hook events it cannot
post itself (``SessionStart``): that path imports the standard-library-only
hook and nothing else, so it starts fast.
"""

import sys

if sys.argv[1:] == ["hook"]:
    from agentpty.cli.hook import hook

    hook()
else:
    from agentpty.cli import main

    main()
