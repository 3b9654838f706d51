"""The group level: reads participant outputs from OUTPUT_DIR only."""
