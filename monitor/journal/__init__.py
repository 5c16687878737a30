"""Reading the journal: the systemd reader and the parallel backlog reader."""
