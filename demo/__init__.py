"""Demo stand-ins for departmental systems (bundled samples served as a department would)
and the test fault injection. Production code never imports this package: the CLI passes
`demo.sources.stand_in` to the pipeline when HUB_DEMO_SOURCES is on."""
