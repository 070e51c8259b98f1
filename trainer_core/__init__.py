"""nlirg-workbench trainer core: everything that trains. Never imports textual or nlirg_tui."""
