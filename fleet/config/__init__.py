"""Configuration: inventories and playbooks, parsed, validated and rendered per host."""
