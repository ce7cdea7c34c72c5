"""``python -m agentpty``: the command line.

Claude Code's hooks run ``python -m agentpty hook`` on every event: that path
imports the standard-library-only hook and nothing else, so it starts fast.
"""

import sys

if sys.argv[1:] == ["hook"]:
    from agentpty.cli.hook import hook

    hook()
else:
    from agentpty.cli import main

    main()
