"""The Flask peer of tools/bench-flask-peer.sh.

What the Flask app this shop replaced did for its two hottest pages, on the same
SQLite file as the shopd it is measured against: its DATABASE_URL was a SQLAlchemy
URL, so the products come through Flask-SQLAlchemy's ORM with a query per request;
GET /products answers jsonify's JSON; GET /browser/inventory renders the product
cards from a Jinja template, with a CSRF token kept in Flask's signed session
cookie (as Flask-WTF keeps it). Read-only: it never writes the database.

Settings (environment): SHOP_DB, the SQLite file; SECRET_KEY, for the cookie.
"""
import os
import secrets

from flask import Flask, jsonify, render_template_string, session
from flask_sqlalchemy import SQLAlchemy

app = Flask(__name__)
app.secret_key = os.environ["SECRET_KEY"]
app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.path.abspath(os.environ["SHOP_DB"])
db = SQLAlchemy(app)


class Product(db.Model):
    __tablename__ = "products"
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String, nullable=False)
    description = db.Column(db.String, nullable=False)
    price_cents = db.Column(db.Integer, nullable=False)
    stock = db.Column(db.Integer, nullable=False)
    image_url = db.Column(db.String, nullable=False)

    def to_dict(self):
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "price": "%.2f" % (self.price_cents / 100),
            "price_cents": self.price_cents,
            "stock": self.stock,
            "image_url": self.image_url,
        }


def products():
    return Product.query.order_by(Product.id).all()


@app.get("/products")
def list_products():
    return jsonify([p.to_dict() for p in products()])


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Inventory</title>
<link rel="stylesheet" href="/static/style.css">
</head>
<body>
<header>
  <nav aria-label="Main">
    <a href="/">Shop</a> <a href="/browser/inventory" aria-current="page">Inventory</a>
    <a href="/browser/cart">Cart</a> <a href="/browser/orders">Orders</a> <a href="/browser/login">Log in</a>
  </nav>
</header>
<main>
  <h1>Inventory</h1>
  <ul class="products">
  {% for p in products %}
    <li class="product card" id="product-{{ p.id }}">
      <h2>{{ p.name }}</h2>
      {% if p.image_url %}<img src="{{ p.image_url }}" alt="{{ p.name }}" width="160" height="160">{% endif %}
      <p class="description">{{ p.description }}</p>
      <p class="price">${{ "%.2f"|format(p.price_cents / 100) }}</p>
      {% if p.stock > 0 %}
      <p class="stock">{{ p.stock }} in stock</p>
      <form method="post" action="/browser/cart/add">
        <input type="hidden" name="csrf_token" value="{{ csrf }}">
        <input type="hidden" name="product_id" value="{{ p.id }}">
        <label for="qty-{{ p.id }}">Quantity</label>
        <input id="qty-{{ p.id }}" name="quantity" type="number" min="1" max="{{ p.stock }}" value="1">
        <button type="submit">Add to cart</button>
      </form>
      {% else %}
      <p class="stock out">Out of stock</p>
      {% endif %}
    </li>
  {% endfor %}
  </ul>
</main>
<footer><p>Shop</p></footer>
</body>
</html>
"""


@app.get("/browser/inventory")
def inventory():
    if "csrf" not in session:
        session["csrf"] = secrets.token_hex(32)
    return render_template_string(PAGE, products=products(), csrf=session["csrf"])


@app.get("/healthz")
def healthz():
    return "ok\n"
