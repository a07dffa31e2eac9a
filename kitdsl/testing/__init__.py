"""Testing a system's contents with pytest: the ``system_manifest`` fixture
(:mod:`kitdsl.testing.plugin`, loaded when kitdsl is installed) and a syrupy extension that
stores manifests as readable text (:mod:`kitdsl.testing.snapshot`)."""
