"""No forms yet: jobs are started through the API (POST /api/v1/batch-jobs); the pages show and cancel them."""
