"""A simulated card gateway: charges cards, confirms the order's payment and clears the cart."""
