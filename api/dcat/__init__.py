"""The hub's datasets as a DCAT-AP 3.0 catalog (api/dcat/graph.py), served by
GET /open/catalog; shapes/ holds the official SHACL shapes the tests validate it against."""
