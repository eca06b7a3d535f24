"""usermgmt: a user-management backend (registration, login, sessions, JWKS)."""

__version__ = "0.1.0"
