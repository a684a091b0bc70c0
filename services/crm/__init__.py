"""crm: firms, accounts, contacts, their addresses and the four settings of each."""
