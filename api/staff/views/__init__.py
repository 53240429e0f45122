"""The staff side's endpoints: adapters that parse the query, call one selector and answer."""
