"""The pure core: aggregates, value objects, the password policy and domain errors. Imports nothing of ours."""
