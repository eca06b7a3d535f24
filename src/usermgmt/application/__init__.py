"""Use cases (one handler per command) and the ports they need. Imports only ``usermgmt.domain``."""
