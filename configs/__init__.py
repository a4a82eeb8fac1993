"""Per-dataset presets (YAML), shipped in the package as `hypernerfgan_ns.dataset_configs`."""
