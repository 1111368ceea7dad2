package shop

import (
	"net/http"
	"strconv"

	"github.com/switchyard-mesh/switchyard/services/shop/internal/catalog"
)

// UserAnswer is the users app's answer.
type UserAnswer struct {
	catalog.User
	ServedBy string `json:"served_by"`
}

// Invoice is the billing app's answer.
type Invoice struct {
	OrderID  int    `json:"order_id"`
	Status   string `json:"status"`
	ServedBy string `json:"served_by"`
}

// OrderWithInvoice is an order as the orders app returns it.
type OrderWithInvoice struct {
	catalog.Order
	Invoice Invoice `json:"invoice"`
}

// OrdersAnswer is the orders app's answer.
type OrdersAnswer struct {
	UserID   int                `json:"user_id"`
	Orders   []OrderWithInvoice `json:"orders"`
	ServedBy string             `json:"served_by"`
}

// FrontendAnswer is the frontend's composed page of a user.
type FrontendAnswer struct {
	User     UserAnswer         `json:"user"`
	Orders   []OrderWithInvoice `json:"orders"`
	ServedBy string             `json:"served_by"`
	// OrdersServedBy names the orders instance that answered, which the
	// orders list itself does not carry.
	OrdersServedBy string `json:"orders_served_by"`
}

// Users serves GET /users/{id}.
func Users(instance string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", healthz(instance))
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathID(w, r, instance, "id")
		if !ok {
			return
		}
		u, ok := catalog.UserByID(id)
		if !ok {
			writeError(w, instance, http.StatusNotFound, "user %d not found", id)
			return
		}
		writeJSON(w, http.StatusOK, UserAnswer{User: u, ServedBy: instance})
	})
	return mux
}

// Billing serves GET /invoices/{order_id}.
func Billing(instance string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", healthz(instance))
	mux.HandleFunc("GET /invoices/{order_id}", func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathID(w, r, instance, "order_id")
		if !ok {
			return
		}
		status, ok := catalog.InvoiceStatus(id)
		if !ok {
			writeError(w, instance, http.StatusNotFound, "order %d not found", id)
			return
		}
		writeJSON(w, http.StatusOK, Invoice{OrderID: id, Status: status, ServedBy: instance})
	})
	return mux
}

// Orders serves GET /users/{id}/orders, asking billing for the invoice of
// each order.
func Orders(instance string, billing *Upstream) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", healthz(instance))
	mux.HandleFunc("GET /users/{id}/orders", func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathID(w, r, instance, "id")
		if !ok {
			return
		}
		orders := catalog.OrdersOf(id)
		if orders == nil {
			writeError(w, instance, http.StatusNotFound, "user %d not found", id)
			return
		}
		answer := OrdersAnswer{UserID: id, Orders: make([]OrderWithInvoice, 0, len(orders)), ServedBy: instance}
		for _, o := range orders {
			var inv Invoice
			if err := billing.GetJSON(r.Context(), "/invoices/"+strconv.Itoa(o.ID), &inv); err != nil {
				upstreamFailure(w, instance, err)
				return
			}
			answer.Orders = append(answer.Orders, OrderWithInvoice{Order: o, Invoice: inv})
		}
		writeJSON(w, http.StatusOK, answer)
	})
	return mux
}

// Frontend serves GET /api/users/{id}: the user from users, with their orders
// from orders.
func Frontend(instance string, users, orders *Upstream) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", healthz(instance))
	mux.HandleFunc("GET /api/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathID(w, r, instance, "id")
		if !ok {
			return
		}
		var user UserAnswer
		if err := users.GetJSON(r.Context(), "/users/"+strconv.Itoa(id), &user); err != nil {
			upstreamFailure(w, instance, err)
			return
		}
		var ords OrdersAnswer
		if err := orders.GetJSON(r.Context(), "/users/"+strconv.Itoa(id)+"/orders", &ords); err != nil {
			upstreamFailure(w, instance, err)
			return
		}
		writeJSON(w, http.StatusOK, FrontendAnswer{
			User: user, Orders: ords.Orders, ServedBy: instance, OrdersServedBy: ords.ServedBy,
		})
	})
	return mux
}
