"""Delivery: serving images (:mod:`.images`), promotion, the prediction log and the serving
app (:mod:`.serving`)."""
