"""From images to the LinuxKit layout: runtime configuration, bundles, files, volumes."""
