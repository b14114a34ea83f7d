"""edgefarm's on-device agent: a package of small modules, shipped as one reproducible zip (agents/README.md).

Kept empty of imports: the model process imports only the modules it needs.
"""
