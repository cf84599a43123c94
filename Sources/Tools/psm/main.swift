print("psm")
