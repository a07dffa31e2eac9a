"""The systems of this repository; ``systems.common`` holds what the products share."""
