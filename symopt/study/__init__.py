"""Analysis that only ``symopt study`` uses: momentum found (part d), and which tasks predict (part t)."""
