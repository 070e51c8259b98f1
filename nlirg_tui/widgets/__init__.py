"""The panes of the Run screen and the widgets they share."""
