"""Config files (ml_collections), one per method and domain: `--config configs/<file>.py[:variant]` on the command
line, or `configs.<file>.get_config(variant)` from the scripts."""
