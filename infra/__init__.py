"""The CDK app that deploys grid-reingest: one stack per stage (see docs/infra.md)."""
