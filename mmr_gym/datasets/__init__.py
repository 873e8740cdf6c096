"""Loaders and converters that turn outcome tables into :class:`~mmr_gym.table.RoutingTable`."""
