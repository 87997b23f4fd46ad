"""Teaching commands: `explain` an endpoint, `ping` a loopback address, name services in `hosts`."""
