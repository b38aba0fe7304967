from portal.auth.models import Role


def test_full_chain(app, client, create_user, login_as, publish):
    publish()
    person = create_user(Role.ANNOTATOR)
    login_as(client, person)
    response = client.get("/")
    assert response.status_code == 200
    assert person.email in response.get_data(as_text=True)
