package auth_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/digitoll/digitoll-worker/auth"
)

// Wiring one tenant in the test environment with a business certificate.
func ExampleNewCache() {
	key, chain, err := auth.LoadPKCS12("/etc/digitoll/acme.p12", "password from a secret store")
	if err != nil {
		fmt.Println(err)
		return
	}
	signer, err := auth.NewCertSigner(key, chain)
	if err != nil {
		fmt.Println(err)
		return
	}
	httpClient := &http.Client{Timeout: 20 * time.Second}
	cache := auth.NewCache(auth.CacheConfig{
		Maskinporten: &auth.Maskinporten{
			TokenURL: "https://test.maskinporten.no/token",
			Issuer:   "https://test.maskinporten.no/",
			ClientID: "the tenant's integration id",
			Signer:   signer,
			HTTP:     httpClient,
		},
		Exchanger: &auth.Exchanger{URL: "https://api-test.toll.no/api/access/external/oauth/token", HTTP: httpClient},
		Logger:    slog.Default(),
	})
	defer cache.Close()

	token, err := cache.Token(context.Background(), "toll:movement/road/v2")
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = token // send as "Authorization: Bearer <token>"; never log it
}
