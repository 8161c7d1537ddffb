"""The console's screens: connections, connection detail, staff, audit."""
