// Package catalog is the demo shop's data: a fixed, deterministic set of
// users, their orders and each order's invoice status, computed from ids so
// every instance of an app answers the same without a database.
package catalog

import "fmt"

// MaxUserID is the highest user id that exists; ids start at 1.
const MaxUserID = 1000

// User is a shop customer.
type User struct {
	ID    int    `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

// Order is one purchase by a user.
type Order struct {
	ID          int    `json:"id"`
	UserID      int    `json:"user_id"`
	Item        string `json:"item"`
	AmountCents int    `json:"amount_cents"`
}

// Invoice statuses.
const (
	StatusPaid    = "paid"
	StatusPending = "pending"
)

var (
	firstNames = []string{"Ada", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Radia"}
	lastNames  = []string{"Lovelace", "Hopper", "Torvalds", "Liskov", "Thompson", "Hamilton", "Ritchie", "Perlman"}
	items      = []string{"switch", "router", "patch cable", "rack", "transceiver", "fan tray", "power supply"}
)

// UserByID returns the user with id, and false if there is none.
func UserByID(id int) (User, bool) {
	if id < 1 || id > MaxUserID {
		return User{}, false
	}
	first := firstNames[id%len(firstNames)]
	last := lastNames[(id/len(firstNames))%len(lastNames)]
	return User{
		ID:    id,
		Name:  first + " " + last,
		Email: fmt.Sprintf("user%d@shop.switchyard.local", id),
	}, true
}

// OrdersOf returns the orders of user id (one to three of them), or nil if
// the user does not exist.
func OrdersOf(userID int) []Order {
	if _, ok := UserByID(userID); !ok {
		return nil
	}
	n := userID%3 + 1
	orders := make([]Order, 0, n)
	for k := 1; k <= n; k++ {
		id := userID*10 + k
		orders = append(orders, Order{
			ID:          id,
			UserID:      userID,
			Item:        items[id%len(items)],
			AmountCents: 499 + (id*7919)%50000,
		})
	}
	return orders
}

// InvoiceStatus returns the invoice status of order id, and false if no such
// order exists.
func InvoiceStatus(orderID int) (string, bool) {
	userID, k := orderID/10, orderID%10
	if _, ok := UserByID(userID); !ok || k < 1 || k > userID%3+1 {
		return "", false
	}
	if orderID%4 == 0 {
		return StatusPending, true
	}
	return StatusPaid, true
}
