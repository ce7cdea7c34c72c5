from agentpty.cli import main

main()
