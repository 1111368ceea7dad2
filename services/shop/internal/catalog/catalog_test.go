package catalog

import "testing"

func TestUserByID(t *testing.T) {
	for _, tc := range []struct {
		name string
		id   int
		ok   bool
	}{
		{"first", 1, true},
		{"last", MaxUserID, true},
		{"zero", 0, false},
		{"negative", -3, false},
		{"beyond", MaxUserID + 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, ok := UserByID(tc.id)
			if ok != tc.ok {
				t.Fatalf("UserByID(%d) ok = %v, want %v", tc.id, ok, tc.ok)
			}
			if ok && (u.ID != tc.id || u.Name == "" || u.Email == "") {
				t.Errorf("UserByID(%d) = %+v", tc.id, u)
			}
		})
	}
}

func TestOrdersAndInvoicesAgree(t *testing.T) {
	for id := 1; id <= MaxUserID; id++ {
		orders := OrdersOf(id)
		if len(orders) < 1 || len(orders) > 3 {
			t.Fatalf("user %d has %d orders", id, len(orders))
		}
		for _, o := range orders {
			if o.UserID != id || o.AmountCents <= 0 || o.Item == "" {
				t.Fatalf("user %d order %+v", id, o)
			}
			status, ok := InvoiceStatus(o.ID)
			if !ok || (status != StatusPaid && status != StatusPending) {
				t.Fatalf("order %d invoice = %q, %v", o.ID, status, ok)
			}
		}
		if _, ok := InvoiceStatus(id*10 + len(orders) + 1); ok {
			t.Fatalf("invoice exists for order beyond user %d's %d orders", id, len(orders))
		}
	}
	if OrdersOf(0) != nil {
		t.Error("OrdersOf(0) is not nil")
	}
}

func TestDeterministic(t *testing.T) {
	a, _ := UserByID(42)
	b, _ := UserByID(42)
	if a != b {
		t.Errorf("UserByID(42) differs between calls: %+v, %+v", a, b)
	}
}
