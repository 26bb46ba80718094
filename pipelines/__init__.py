"""Declarative training recipes (*.toml), installed as the package data of wordnet.pipelines."""
