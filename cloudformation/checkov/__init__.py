"""checkov custom policies for cloudformation/template.yaml (loaded with --external-checks-dir)."""
