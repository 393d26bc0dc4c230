from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("accounts/lockouts/", views.lockouts, name="lockouts"),
]
