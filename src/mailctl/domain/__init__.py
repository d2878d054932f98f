"""Pure rules of mailctl: names, passwords, DKIM records, certificate checks."""
