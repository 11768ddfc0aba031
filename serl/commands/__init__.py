"""One module per `serl` subcommand, plus the shared parsing of a task and its field overrides."""
