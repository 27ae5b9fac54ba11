"""Model files, their cards and the recipes that trained them."""
