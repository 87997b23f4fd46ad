"""Import other tools' stub and stack files as profiles, and export profiles to real engines."""
